//! Per-call store data: resource limits, the locked-down WASI context, and the host's own
//! implementations of the imports every provider may use.
//!
//! - `wasi:random/random` and `wasi:clocks/wall-clock` (the published worlds' imports) are served
//!   here directly, so a provider that imports nothing else never builds a WASI context.
//! - Everything else of WASI 0.2 comes from `wasmtime-wasi` with a context built on first use:
//!   no preopened directories, no sockets (TCP, UDP and name lookup disabled, every address
//!   refused), empty environment and arguments, empty stdin, and stdout/stderr captured into
//!   [`CappedOutput`] buffers that keep at most a fixed number of bytes per call.
//! - `wasi:clocks/monotonic-clock` is served here too, with subscriptions that are ready at once:
//!   blocking in `wasi:io/poll` would stall a server thread where the epoch deadline cannot reach
//!   (host code), so a provider can never sleep. `now` still advances truthfully.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::clocks::{monotonic_clock, wall_clock};
use wasmtime_wasi::p2::bindings::random::random;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Store data for one provider call.
pub struct CallState {
    pub(super) limits: MemoryLimiter,
    pub(super) budget: CallBudget,
    table: ResourceTable,
    /// Built on the first WASI call beyond randomness and clocks.
    wasi: Option<WasiCtx>,
    /// The captured stdout and stderr, once `wasi` exists.
    output: Option<[CappedOutput; 2]>,
    output_limit: usize,
    /// Keeps the epoch ticker running while this call's store exists.
    _active: super::ActiveCall,
}

impl CallState {
    /// Fresh state for one call.
    pub(crate) fn new(
        limits: MemoryLimiter,
        budget: CallBudget,
        output_limit: usize,
        active: super::ActiveCall,
    ) -> Self {
        Self {
            limits,
            budget,
            table: ResourceTable::new(),
            wasi: None,
            output: None,
            output_limit,
            _active: active,
        }
    }

    /// What the provider wrote to stdout and stderr during the call, if anything.
    pub fn take_output(&mut self) -> Vec<(&'static str, Captured)> {
        let Some(streams) = self.output.take() else {
            return Vec::new();
        };
        ["stdout", "stderr"]
            .into_iter()
            .zip(streams)
            .map(|(name, stream)| (name, stream.take()))
            .filter(|(_, captured)| !captured.bytes.is_empty() || captured.dropped > 0)
            .collect()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let limit = self.output_limit;
        let output = &mut self.output;
        let ctx = self.wasi.get_or_insert_with(|| {
            let stdout = CappedOutput::new(limit);
            let stderr = CappedOutput::new(limit);
            let mut builder = WasiCtxBuilder::new();
            builder
                .stdout(stdout.clone())
                .stderr(stderr.clone())
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .socket_addr_check(|_, _| Box::pin(async { false }));
            *output = Some([stdout, stderr]);
            // No `preopened_dir`, `env`, `args` or `stdin`: none, empty, empty, empty.
            builder.build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and table growth; remembers whether the cap was hit so a trap can be reported
/// as a memory-limit failure.
pub struct MemoryLimiter {
    pub(super) max_memory: usize,
    pub(super) max_table_elements: usize,
    pub(super) hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.hit = true;
            wasmtime::bail!("memory limit of {} bytes exceeded", self.max_memory);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            self.hit = true;
            wasmtime::bail!(
                "table limit of {} elements exceeded",
                self.max_table_elements
            );
        }
        Ok(true)
    }
}

/// The budget of one call, checked on every epoch tick (see `super::TICK`): the provider's own
/// CPU time (the calling thread's, so host work it causes such as instantiation counts too) and
/// a wall-clock backstop for time spent blocked.
///
/// Nothing is measured when a call starts: the first tick during the call records where the
/// thread's CPU clock and the wall clock stand, and later ticks measure from there. A call no tick
/// falls into (nearly every call of a well-behaved provider) therefore reads no clock at all; the
/// price is that the work before the first tick (at most one tick's worth) is not counted, so a
/// looping provider is cut off at most one tick after its budget.
#[derive(Debug)]
pub struct CallBudget {
    cpu: std::time::Duration,
    wall: std::time::Duration,
    since: Option<(Instant, std::time::Duration)>,
    /// Which limit cut the call off, if any.
    pub(super) exceeded: Option<BudgetKind>,
}

/// Which limit of a [`CallBudget`] was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetKind {
    /// The provider's own CPU time (`runtime.call_cpu_ms` or its `call-budget-ms`).
    Cpu,
    /// The wall-clock backstop (`runtime.call_timeout_ms`).
    Wall,
}

impl CallBudget {
    /// A budget of `cpu` of the calling thread's CPU time and `wall` of elapsed time.
    pub fn new(cpu: std::time::Duration, wall: std::time::Duration) -> Self {
        Self {
            cpu,
            wall,
            since: None,
            exceeded: None,
        }
    }

    /// Called on every epoch tick during the call: whether it may go on for another tick.
    pub fn on_tick(&mut self) -> wasmtime::UpdateDeadline {
        let cpu_now = thread_cpu_time();
        let Some((wall_start, cpu_start)) = self.since else {
            self.since = Some((Instant::now(), cpu_now));
            return wasmtime::UpdateDeadline::Continue(1);
        };
        if cpu_now.saturating_sub(cpu_start) >= self.cpu {
            self.exceeded = Some(BudgetKind::Cpu);
            wasmtime::UpdateDeadline::Interrupt
        } else if wall_start.elapsed() >= self.wall {
            self.exceeded = Some(BudgetKind::Wall);
            wasmtime::UpdateDeadline::Interrupt
        } else {
            wasmtime::UpdateDeadline::Continue(1)
        }
    }
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`): advances only while the
/// thread runs, so a busy machine does not use up a provider's budget.
#[cfg(unix)]
fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Without a per-thread CPU clock, elapsed time stands in for it.
#[cfg(not(unix))]
fn thread_cpu_time() -> std::time::Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// What one stream captured in one call.
#[derive(Debug, Default)]
pub struct Captured {
    /// The first bytes written, up to the limit.
    pub bytes: Vec<u8>,
    /// Bytes written past the limit and dropped.
    pub dropped: usize,
}

/// A guest's stdout or stderr: keeps the first `limit` bytes of a call, counts and drops the rest.
/// Writes never fail and never block, so a chatty provider is not broken by the cap.
#[derive(Clone)]
pub struct CappedOutput {
    kept: Arc<Mutex<Vec<u8>>>,
    dropped: Arc<AtomicUsize>,
    limit: usize,
}

impl CappedOutput {
    fn new(limit: usize) -> Self {
        Self {
            kept: Arc::new(Mutex::new(Vec::new())),
            dropped: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = self.limit.saturating_sub(kept.len());
        let (keep, drop) = bytes.split_at(bytes.len().min(room));
        kept.extend_from_slice(keep);
        self.dropped.fetch_add(drop.len(), Ordering::Relaxed);
    }

    fn take(&self) -> Captured {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Captured {
            bytes: std::mem::take(&mut *kept),
            dropped: self.dropped.swap(0, Ordering::Relaxed),
        }
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// Bytes a guest may write per `write` call (the WASI `check-write` permit).
const WRITE_PERMIT: usize = 64 << 10;

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A clock subscription that is ready at once (see the module docs).
struct ReadyAtOnce;

#[wasmtime_wasi::async_trait]
impl Pollable for ReadyAtOnce {
    async fn ready(&mut self) {}
}

impl CallState {
    fn ready_at_once(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let resource = self.table.push(ReadyAtOnce)?;
        wasmtime_wasi::p2::subscribe(&mut self.table, resource)
    }
}

/// The origin of the monotonic clock: the first time any provider read it.
fn monotonic_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl monotonic_clock::Host for CallState {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(u64::try_from(monotonic_origin().elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        _when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_at_once()
    }

    fn subscribe_duration(
        &mut self,
        _duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_at_once()
    }
}

impl random::Host for CallState {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        // Bounded so a guest cannot make the host allocate without limit.
        let len = usize::try_from(len.min(1 << 16)).unwrap_or(1 << 16);
        let mut out = vec![0; len];
        rand::fill(&mut out[..]);
        Ok(out)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(rand::random())
    }
}

impl wall_clock::Host for CallState {
    fn now(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(wall_clock::Datetime {
            seconds: now.as_secs(),
            nanoseconds: now.subsec_nanos(),
        })
    }

    fn resolution(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        Ok(wall_clock::Datetime {
            seconds: 0,
            nanoseconds: 1,
        })
    }
}
