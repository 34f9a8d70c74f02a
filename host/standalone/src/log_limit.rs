//! Rate-limited log lines: a condition that can repeat thousands of times a second (accept
//! failing on descriptor exhaustion, the connection cap, dropped provider headers) is logged at
//! most once per interval, with the number of occurrences left out since the last line.
//!
//! The limiter only decides whether to log; it never formats or stores what would be logged, so a
//! suppressed occurrence costs one lock and an addition.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows one log line per `interval` and counts the occurrences in between.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter allowing one line per `interval`.
    #[must_use]
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Records one occurrence. `Some(n)` means: log it now, `n` occurrences were suppressed since
    /// the previous line; `None` means: stay quiet (the occurrence is counted).
    pub fn occurrence(&self) -> Option<u64> {
        self.occurrence_at(Instant::now())
    }

    fn occurrence_at(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means a panic elsewhere while counting: keep counting.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match state.last {
            Some(last) if now.duration_since(last) < self.interval => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_suppressed_count() {
        let limiter = LogLimiter::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(limiter.occurrence_at(start), Some(0));
        for i in 1..=1000 {
            assert_eq!(
                limiter.occurrence_at(start + Duration::from_micros(i)),
                None
            );
        }
        assert_eq!(
            limiter.occurrence_at(start + Duration::from_secs(1)),
            Some(1000)
        );
        assert_eq!(
            limiter.occurrence_at(start + Duration::from_millis(1500)),
            None
        );
    }
}
