//! Bounded compare-and-swap: retries on lost races with growing jittered waits, and gives up
//! with a clear error.

use std::time::Duration;

use gatehouse_core::identity::{CasError, CasStep, RetryPolicy, WriteMode, compare_and_swap};

use super::memory::{MemoryStore, RecordingBackoff};

#[test]
fn delay_cap_doubles_from_the_base_and_stops_at_the_max() {
    let policy = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
    };
    let caps: Vec<u64> = (1..=6)
        .map(|retry| policy.delay_cap(retry).as_millis() as u64)
        .collect();
    assert_eq!(caps, [2, 4, 8, 16, 20, 20]);
    assert_eq!(policy.delay_cap(200), Duration::from_millis(20));
}

#[test]
fn compare_and_swap_retries_lost_races_with_growing_waits() {
    let store = MemoryStore::at(0);
    store.put_raw("k", b"1");
    store.race(3);
    let backoff = RecordingBackoff::default();
    let policy = RetryPolicy::default();
    let result: Result<&str, CasError<()>> =
        compare_and_swap(&store, "k", &policy, &backoff, |current| {
            assert!(current.is_some());
            Ok(CasStep::Write(b"2".to_vec(), None, "written"))
        });
    assert_eq!(result.expect("fourth attempt lands"), "written");
    assert_eq!(store.entry("k").expect("entry").value, b"2");
    assert_eq!(
        backoff.caps(),
        [
            policy.delay_cap(1),
            policy.delay_cap(2),
            policy.delay_cap(3)
        ]
    );
}

#[test]
fn compare_and_swap_gives_up_after_max_attempts_with_a_clear_error() {
    let store = MemoryStore::at(0);
    store.put_raw("k", b"1");
    store.race(100);
    let backoff = RecordingBackoff::default();
    let policy = RetryPolicy {
        max_attempts: 4,
        ..RetryPolicy::default()
    };
    let error = compare_and_swap::<(), ()>(&store, "k", &policy, &backoff, |_| {
        Ok(CasStep::Write(b"2".to_vec(), None, ()))
    })
    .expect_err("every attempt loses");
    assert!(matches!(error, CasError::Exhausted { attempts: 4 }));
    assert_eq!(
        error.to_string(),
        "compare-and-swap gave up after 4 attempts: other writers kept changing the entry"
    );
    assert_eq!(backoff.caps().len(), 3);
    assert_eq!(store.writes().len(), 4);
}

#[test]
fn compare_and_swap_adds_only_when_absent_and_swaps_on_the_read_generation() {
    let store = MemoryStore::at(0);
    let backoff = RecordingBackoff::default();
    let policy = RetryPolicy::default();
    for _ in 0..2 {
        compare_and_swap::<(), ()>(&store, "k", &policy, &backoff, |_| {
            Ok(CasStep::Write(b"v".to_vec(), None, ()))
        })
        .expect("write");
    }
    let writes = store.writes();
    assert_eq!(writes[0], WriteMode::AddOnly);
    assert!(matches!(writes[1], WriteMode::IfGeneration(_)));
    assert!(backoff.caps().is_empty());
}

#[test]
fn compare_and_swap_leave_writes_nothing() {
    let store = MemoryStore::at(0);
    let backoff = RecordingBackoff::default();
    let out = compare_and_swap::<u8, ()>(&store, "k", &RetryPolicy::default(), &backoff, |_| {
        Ok(CasStep::Leave(7))
    });
    assert_eq!(out.expect("left"), 7);
    assert!(store.writes().is_empty());
}
