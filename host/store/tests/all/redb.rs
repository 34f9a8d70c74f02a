//! The embedded redb backend: the contract, plus creation, durability across reopen, purging
//! and open errors.

use std::time::Duration;

use gatehouse_core::identity::{IdentityStore, WriteMode};
use gatehouse_store::{RedbOpenError, RedbStore};
use tempfile::TempDir;

fn fresh() -> (RedbStore, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RedbStore::open(dir.path().join("identity.redb")).expect("open");
    (store, dir)
}

mod contract {
    crate::contract_suite!(super::fresh());
}

#[test]
fn store_file_is_created_on_first_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("identity.redb");
    assert!(!path.exists());
    let store = RedbStore::open(&path).expect("open");
    assert!(path.is_file());
    assert_eq!(store.path(), path);
}

#[test]
fn acknowledged_writes_survive_a_reopen_and_generations_keep_growing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("identity.redb");
    let g1 = {
        let store = RedbStore::open(&path).expect("open");
        store
            .insert("ec:kept", b"record", WriteMode::AddOnly, None)
            .expect("insert")
    };
    let store = RedbStore::open(&path).expect("reopen");
    let read = store.get("ec:kept").expect("get").expect("survived");
    assert_eq!(
        (read.value.as_slice(), read.generation),
        (&b"record"[..], g1)
    );
    let g2 = store
        .insert("ec:other", b"x", WriteMode::AddOnly, None)
        .expect("insert");
    assert!(g2.get() > g1.get(), "the counter is persisted too");
}

#[test]
fn purge_expired_removes_only_expired_entries() {
    let (store, _dir) = fresh();
    store
        .insert(
            "ec:short",
            b"1",
            WriteMode::AddOnly,
            Some(Duration::from_millis(50)),
        )
        .expect("insert");
    store
        .insert(
            "ec:long",
            b"2",
            WriteMode::AddOnly,
            Some(Duration::from_secs(3600)),
        )
        .expect("insert");
    store
        .insert("ec:forever", b"3", WriteMode::AddOnly, None)
        .expect("insert");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        store.stored_entries().expect("count"),
        3,
        "expired until purged"
    );
    assert_eq!(store.purge_expired().expect("purge"), 1);
    assert_eq!(store.stored_entries().expect("count"), 2);
    assert!(store.get("ec:long").expect("get").is_some());
    assert!(store.get("ec:forever").expect("get").is_some());
    assert_eq!(store.purge_expired().expect("purge"), 0);
}

#[test]
fn open_error_names_the_config_key_and_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing-dir").join("identity.redb");
    let error = RedbStore::open(&path).expect_err("no such directory");
    assert!(matches!(error, RedbOpenError::Open { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "config key `store.path`: cannot open the identity store `{}`",
            path.display()
        )
    );
}

#[test]
fn concurrent_writers_share_commits_and_every_acknowledged_write_survives_a_reopen() {
    // Group commit: 16 threads insert at once; each insert returns only after the commit that
    // holds it, so after the store is dropped and reopened every acknowledged key is there.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("identity.redb");
    {
        let store = RedbStore::open(&path).expect("open");
        std::thread::scope(|s| {
            for t in 0..16 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..20 {
                        store
                            .insert(&format!("ec:{t}-{i}"), b"v", WriteMode::AddOnly, None)
                            .expect("acknowledged");
                    }
                });
            }
        });
    }
    let store = RedbStore::open(&path).expect("reopen after drop");
    assert_eq!(store.stored_entries().expect("count"), 320);
    for t in 0..16 {
        for i in 0..20 {
            assert!(store.get(&format!("ec:{t}-{i}")).expect("get").is_some());
        }
    }
}

#[test]
fn update_many_runs_its_steps_inside_the_transaction_so_no_update_loses_a_race() {
    // On redb the steps run in the writer's transaction: concurrent batches over the same keys
    // never see a conflict.
    let (store, _dir) = fresh();
    std::thread::scope(|s| {
        for mark in ["A", "B", "C", "D"] {
            let store = &store;
            s.spawn(move || {
                for _ in 0..10 {
                    let updates = (0..50)
                        .map(|i| crate::contract::append(&format!("ec:k{i}"), mark))
                        .collect();
                    for result in store.update_many(updates) {
                        result.expect("no conflict on redb");
                    }
                }
            });
        }
    });
    for i in 0..50 {
        let value = store
            .get(&format!("ec:k{i}"))
            .expect("get")
            .expect("written")
            .value;
        assert_eq!(value.len(), 40);
    }
}
