//! Driving the pipeline's futures without an async runtime.
//!
//! The page pipeline is an `async fn` so that a host whose identity store answers
//! asynchronously (the standalone host's redb group commit, a network store) can await it
//! without holding a thread. Hosts without such a store — the composed components, tests,
//! the synchronous wrappers in [`crate::identity`] — run the same future to completion here.
//!
//! Hand-written instead of a crate's `block_on` (futures-executor, pollster): it is a dozen
//! lines, and the common case costs nothing: a future that is ready on its first poll (every
//! pipeline run without a store, every run over [`crate::identity::Inline`]) is polled once
//! with a no-op waker, with no allocation and no thread parking.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Runs `future` to completion on the calling thread, parking it while the future waits.
///
/// Do not call it on an async runtime's worker with a future that waits on that runtime's I/O
/// or timers: the worker would park and the runtime could not make progress.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    if let Poll::Ready(output) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return output;
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            // A wake before the park makes the park return at once: no lost wake-up.
            Poll::Pending => thread::park(),
        }
    }
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::block_on;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    #[test]
    fn ready_future() {
        assert_eq!(block_on(async { 7 }), 7);
    }

    /// Pending once, woken from another thread after a delay: the parked thread resumes.
    #[test]
    fn future_woken_from_another_thread() {
        struct Later(Option<std::thread::JoinHandle<()>>, bool);
        impl Future for Later {
            type Output = u8;
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u8> {
                if self.1 {
                    return Poll::Ready(9);
                }
                if self.0.is_none() {
                    let waker = cx.waker().clone();
                    self.0 = Some(std::thread::spawn(move || {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        waker.wake();
                    }));
                    return Poll::Pending;
                }
                self.1 = true;
                Poll::Ready(9)
            }
        }
        assert_eq!(block_on(Later(None, false)), 9);
    }
}
