//! The `IdentityStore` contract, generic over the backend. `contract_suite!` instantiates every
//! case for one backend, given an expression that makes a fresh, empty store.

use std::sync::Barrier;
use std::time::Duration;

use gatehouse_core::identity::{
    CasStep, IdentityStore, RetryPolicy, StoreError, Update, UpdateStep, Write, WriteMode,
    compare_and_swap,
};
use gatehouse_store::JitteredBackoff;

pub fn absent_key_reads_none(store: &dyn IdentityStore) {
    assert_eq!(store.get("ec:absent").expect("get"), None);
}

pub fn add_only_creates_once_then_refuses(store: &dyn IdentityStore) {
    let g = store
        .insert("ec:a", b"first", WriteMode::AddOnly, None)
        .expect("created");
    let error = store
        .insert("ec:a", b"second", WriteMode::AddOnly, None)
        .expect_err("exists");
    assert!(matches!(error, StoreError::AlreadyExists), "{error:?}");
    let read = store.get("ec:a").expect("get").expect("present");
    assert_eq!(read.value, b"first");
    assert_eq!(read.generation, g);
}

pub fn overwrite_replaces_with_a_new_generation(store: &dyn IdentityStore) {
    let g1 = store
        .insert("ec:o", b"1", WriteMode::Overwrite, None)
        .expect("absent ok");
    let g2 = store
        .insert("ec:o", b"2", WriteMode::Overwrite, None)
        .expect("present ok");
    assert_ne!(g1, g2);
    let read = store.get("ec:o").expect("get").expect("present");
    assert_eq!((read.value.as_slice(), read.generation), (&b"2"[..], g2));
}

pub fn if_generation_swaps_only_on_the_generation_read(store: &dyn IdentityStore) {
    let g1 = store
        .insert("ec:c", b"1", WriteMode::AddOnly, None)
        .expect("created");
    let g2 = store
        .insert("ec:c", b"2", WriteMode::IfGeneration(g1), None)
        .expect("matching generation");
    let stale = store
        .insert("ec:c", b"3", WriteMode::IfGeneration(g1), None)
        .expect_err("stale generation");
    assert!(matches!(stale, StoreError::GenerationMismatch), "{stale:?}");
    let read = store.get("ec:c").expect("get").expect("present");
    assert_eq!((read.value.as_slice(), read.generation), (&b"2"[..], g2));
}

pub fn if_generation_on_an_absent_key_is_a_mismatch(store: &dyn IdentityStore) {
    let g = store
        .insert("ec:x", b"1", WriteMode::AddOnly, None)
        .expect("created");
    store.delete("ec:x").expect("deleted");
    let error = store
        .insert("ec:x", b"2", WriteMode::IfGeneration(g), None)
        .expect_err("absent");
    assert!(matches!(error, StoreError::GenerationMismatch), "{error:?}");
    assert_eq!(store.get("ec:x").expect("get"), None);
}

pub fn delete_removes_and_deleting_an_absent_key_succeeds(store: &dyn IdentityStore) {
    store
        .insert("ec:d", b"1", WriteMode::AddOnly, None)
        .expect("created");
    store.delete("ec:d").expect("deleted");
    assert_eq!(store.get("ec:d").expect("get"), None);
    store.delete("ec:d").expect("absent delete");
}

pub fn generation_is_never_reused_after_delete(store: &dyn IdentityStore) {
    let g1 = store
        .insert("ec:aba", b"1", WriteMode::AddOnly, None)
        .expect("created");
    store.delete("ec:aba").expect("deleted");
    let g2 = store
        .insert("ec:aba", b"1", WriteMode::AddOnly, None)
        .expect("created again");
    assert_ne!(g1, g2, "a stale compare-and-swap must not succeed (ABA)");
    assert!(
        store
            .insert("ec:aba", b"2", WriteMode::IfGeneration(g1), None)
            .is_err()
    );
}

pub fn expired_entry_is_invisible_and_can_be_added_again(store: &dyn IdentityStore) {
    store
        .insert(
            "ec:t",
            b"1",
            WriteMode::AddOnly,
            Some(Duration::from_millis(150)),
        )
        .expect("created");
    assert!(store.get("ec:t").expect("get").is_some());
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(store.get("ec:t").expect("get"), None);
    let error = store
        .insert("ec:t", b"2", WriteMode::IfGeneration(gen_zero()), None)
        .expect_err("expired is absent");
    assert!(matches!(error, StoreError::GenerationMismatch));
    store
        .insert("ec:t", b"2", WriteMode::AddOnly, None)
        .expect("an expired entry does not block add-only");
}

fn gen_zero() -> gatehouse_core::identity::Generation {
    gatehouse_core::identity::Generation::new(0)
}

pub fn write_without_ttl_clears_an_earlier_ttl(store: &dyn IdentityStore) {
    store
        .insert(
            "ec:p",
            b"1",
            WriteMode::AddOnly,
            Some(Duration::from_millis(150)),
        )
        .expect("created");
    store
        .insert("ec:p", b"2", WriteMode::Overwrite, None)
        .expect("overwritten");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        store
            .get("ec:p")
            .expect("get")
            .expect("no ttl any more")
            .value,
        b"2"
    );
}

pub fn values_are_bytes_not_text(store: &dyn IdentityStore) {
    let value: Vec<u8> = (0..=255).collect();
    store
        .insert("ec:bin", &value, WriteMode::AddOnly, None)
        .expect("created");
    assert_eq!(
        store.get("ec:bin").expect("get").expect("present").value,
        value
    );
}

/// 200 threads insert the same absent key add-only at once: exactly one wins.
pub fn concurrent_first_inserts_create_exactly_one_entry(store: &dyn IdentityStore) {
    const WRITERS: usize = 200;
    let barrier = Barrier::new(WRITERS);
    let results: Vec<Result<_, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|i| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    store.insert(
                        "ec:race",
                        format!("writer {i}").as_bytes(),
                        WriteMode::AddOnly,
                        None,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    let winners: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one add-only insert wins");
    for result in &results {
        if let Err(error) = result {
            assert!(matches!(error, StoreError::AlreadyExists), "{error:?}");
        }
    }
    let stored = store.get("ec:race").expect("get").expect("present");
    let winner = results
        .iter()
        .find_map(|r| r.as_ref().ok())
        .expect("winner");
    assert_eq!(&stored.generation, winner);
}

/// Concurrent read-modify-write increments through `compare_and_swap` lose no update.
pub fn concurrent_compare_and_swap_loses_no_update(store: &dyn IdentityStore) {
    const THREADS: u64 = 8;
    const INCREMENTS: u64 = 15;
    let policy = RetryPolicy {
        max_attempts: 10_000,
        base_delay: Duration::from_micros(200),
        max_delay: Duration::from_millis(5),
    };
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..INCREMENTS {
                    compare_and_swap::<(), ()>(
                        store,
                        "ec:counter",
                        &policy,
                        &JitteredBackoff,
                        |current| {
                            let n = current.map_or(0, |v| {
                                u64::from_le_bytes(v.value.as_slice().try_into().expect("8 bytes"))
                            });
                            Ok(CasStep::Write((n + 1).to_le_bytes().to_vec(), None, ()))
                        },
                    )
                    .expect("increment lands");
                }
            });
        }
    });
    let value = store
        .get("ec:counter")
        .expect("get")
        .expect("present")
        .value;
    assert_eq!(
        u64::from_le_bytes(value.as_slice().try_into().expect("8 bytes")),
        THREADS * INCREMENTS
    );
}

pub fn insert_many_applies_in_order_and_answers_each_write(store: &dyn IdentityStore) {
    let g = store
        .insert("ec:m1", b"0", WriteMode::AddOnly, None)
        .expect("created");
    let write = |key, value, mode| Write {
        key,
        value,
        mode,
        ttl: None,
    };
    let results = store.insert_many(&[
        write("ec:m1", b"1", WriteMode::IfGeneration(g)),
        // The same expected generation again: the first write changed it, so this conflicts.
        write("ec:m1", b"2", WriteMode::IfGeneration(g)),
        write("ec:m2", b"a", WriteMode::AddOnly),
        write("ec:m2", b"b", WriteMode::AddOnly),
        write("ec:m3", b"x", WriteMode::Overwrite),
    ]);
    assert_eq!(results.len(), 5);
    let g1 = *results[0].as_ref().expect("matching generation");
    assert!(
        matches!(results[1], Err(StoreError::GenerationMismatch)),
        "{:?}",
        results[1]
    );
    let g2 = *results[2].as_ref().expect("added");
    assert!(
        matches!(results[3], Err(StoreError::AlreadyExists)),
        "{:?}",
        results[3]
    );
    let g3 = *results[4].as_ref().expect("overwritten");
    assert!(
        g.get() < g1.get() && g1.get() < g2.get() && g2.get() < g3.get(),
        "generations grow in write order"
    );
    let read = |key| store.get(key).expect("get").expect("present");
    assert_eq!(
        (read("ec:m1").value, read("ec:m1").generation),
        (b"1".to_vec(), g1)
    );
    assert_eq!(read("ec:m2").value, b"a");
    assert_eq!(read("ec:m3").value, b"x");
    assert!(store.insert_many(&[]).is_empty());
}

pub fn concurrent_insert_many_loses_no_write(store: &dyn IdentityStore) {
    // Eight writers, each adding 50 keys of its own in batches of 10 while the others do the
    // same: every write is acknowledged and every acknowledged write is readable.
    let barrier = Barrier::new(8);
    std::thread::scope(|s| {
        for t in 0..8 {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for chunk in 0..5 {
                    let keys: Vec<String> = (0..10)
                        .map(|i| format!("ec:w{t}-{}", chunk * 10 + i))
                        .collect();
                    let writes: Vec<Write<'_>> = keys
                        .iter()
                        .map(|key| Write {
                            key,
                            value: key.as_bytes(),
                            mode: WriteMode::AddOnly,
                            ttl: None,
                        })
                        .collect();
                    for result in store.insert_many(&writes) {
                        result.expect("acknowledged");
                    }
                }
            });
        }
    });
    for t in 0..8 {
        for i in 0..50 {
            let key = format!("ec:w{t}-{i}");
            let read = store.get(&key).expect("get").expect("written");
            assert_eq!(read.value, key.as_bytes());
        }
    }
}

/// An update appending `mark` to the key's value (creating it when absent), reporting the
/// length it read.
pub fn append(key: &str, mark: &'static str) -> Update {
    Update {
        key: key.to_owned(),
        step: Box::new(move |current| {
            let mut value = current.map(|v| v.value.clone()).unwrap_or_default();
            let report = u32::try_from(value.len()).unwrap_or(u32::MAX);
            value.extend_from_slice(mark.as_bytes());
            UpdateStep::Write {
                value,
                ttl: None,
                report,
            }
        }),
    }
}

pub fn update_many_reads_decides_and_writes_in_order(store: &dyn IdentityStore) {
    store
        .insert("ec:u1", b"a", WriteMode::AddOnly, None)
        .expect("created");
    let leave = Update {
        key: "ec:u1".to_owned(),
        step: Box::new(|current| UpdateStep::Leave {
            report: u32::from(current.is_some()) + 40,
        }),
    };
    let results = store.update_many(vec![
        append("ec:u1", "b"),
        // Sees the first update's write.
        append("ec:u1", "c"),
        append("ec:u2", "x"),
        leave,
    ]);
    let done: Vec<_> = results.into_iter().map(|r| r.expect("applied")).collect();
    assert_eq!(
        done.iter().map(|d| d.report).collect::<Vec<_>>(),
        vec![1, 2, 0, 41]
    );
    assert!(done[..3].iter().all(|d| d.written.is_some()));
    assert_eq!(done[3].written, None);
    let read = store.get("ec:u1").expect("get").expect("present");
    assert_eq!(read.value, b"abc");
    assert_eq!(Some(read.generation), done[1].written);
    assert_eq!(
        store.get("ec:u2").expect("get").expect("created").value,
        b"x"
    );
    assert!(store.update_many(Vec::new()).is_empty());
}

pub fn concurrent_update_many_loses_no_update(store: &dyn IdentityStore) {
    // Four writers append their mark to the same ten keys, five times each; a lost race (the
    // default implementation's conditional write) is retried. Every key ends with all 20 marks.
    const MARKS: [&str; 4] = ["A", "B", "C", "D"];
    let barrier = Barrier::new(MARKS.len());
    std::thread::scope(|s| {
        for mark in MARKS {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for _ in 0..5 {
                    let mut pending: Vec<String> = (0..10).map(|i| format!("ec:c{i}")).collect();
                    for _ in 0..200 {
                        if pending.is_empty() {
                            break;
                        }
                        let results =
                            store.update_many(pending.iter().map(|k| append(k, mark)).collect());
                        let mut retry = Vec::new();
                        for (key, result) in pending.into_iter().zip(results) {
                            match result {
                                Ok(_) => {}
                                Err(e) if e.is_conflict() => retry.push(key),
                                Err(e) => panic!("{e}"),
                            }
                        }
                        pending = retry;
                    }
                    assert!(pending.is_empty(), "kept losing races");
                }
            });
        }
    });
    for i in 0..10 {
        let value = store
            .get(&format!("ec:c{i}"))
            .expect("get")
            .expect("written")
            .value;
        assert_eq!(value.len(), 20);
        for mark in MARKS {
            assert_eq!(
                value.iter().filter(|b| **b == mark.as_bytes()[0]).count(),
                5
            );
        }
    }
}

/// One `#[test]` per contract case for a backend; `$make` builds a fresh store and anything
/// that must outlive it (a temp dir, a server), as `(store, guard)`.
#[macro_export]
macro_rules! contract_suite {
    ($make:expr) => {
        $crate::contract_suite!(@cases $make;
            absent_key_reads_none,
            add_only_creates_once_then_refuses,
            overwrite_replaces_with_a_new_generation,
            if_generation_swaps_only_on_the_generation_read,
            if_generation_on_an_absent_key_is_a_mismatch,
            delete_removes_and_deleting_an_absent_key_succeeds,
            generation_is_never_reused_after_delete,
            expired_entry_is_invisible_and_can_be_added_again,
            write_without_ttl_clears_an_earlier_ttl,
            values_are_bytes_not_text,
            concurrent_first_inserts_create_exactly_one_entry,
            concurrent_compare_and_swap_loses_no_update,
            insert_many_applies_in_order_and_answers_each_write,
            concurrent_insert_many_loses_no_write,
            update_many_reads_decides_and_writes_in_order,
            concurrent_update_many_loses_no_update,
        );
    };
    (@cases $make:expr; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let (store, _guard) = $make;
                $crate::contract::$case(&store);
            }
        )*
    };
}
