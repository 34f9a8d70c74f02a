//! The identity store backends: one contract suite run against redb and against a real Valkey
//! (or Redis) server, plus what is specific to each backend.

mod contract;
mod lifecycle;
mod redb;
mod server;
mod valkey;

#[test]
fn jittered_backoff_waits_at_most_the_cap() {
    use gatehouse_core::identity::Backoff as _;
    use std::time::{Duration, Instant};
    let backoff = gatehouse_store::JitteredBackoff;
    let started = Instant::now();
    for _ in 0..20 {
        gatehouse_core::task::block_on(backoff.pause(Duration::from_millis(2)));
    }
    gatehouse_core::task::block_on(backoff.pause(Duration::ZERO));
    // 20 waits of at most 2 ms each, plus scheduling slack on a loaded machine.
    assert!(
        started.elapsed() < Duration::from_millis(40 + 500),
        "{:?}",
        started.elapsed()
    );
}
