//! The `rt` feature's global allocator: a bump arena in the component's initial linear memory, with a
//! general-purpose allocator behind it for whatever does not fit.
//!
//! Why not just dlmalloc: a provider instance serves exactly one call (the host builds a fresh
//! instance per call and drops it afterwards), and dlmalloc takes its heap with `memory.grow` on
//! the first allocation of every instance. Growing costs an `mprotect` in the host during the
//! call, and the host's pooling allocator must shrink the slot back with another `mprotect` before
//! the next instance, which flushes the TLB of every core running the server (IPIs). Together that
//! was a fifth of a provider call (`perf` on `benches/providers.rs`; numbers in BENCHMARKS.md).
//! The arena is a zero-initialised static, so it is part of the initial memory: a provider whose
//! allocations fit never grows its memory, and its untouched arena pages cost nothing.
//!
//! Why a hand-written bump allocator rather than a crate: `static-alloc`'s `Bump` serves a static
//! array but returns null when it is full, with no fallback; `talc` can claim a static array but
//! needs a hand-written out-of-memory handler to grow past it, and `dlmalloc` always takes its
//! heap with `memory.grow`. This is ~60 lines in front of dlmalloc. Freeing is unnecessary for
//! one call's worth of allocations, so the arena only gives back the most recent block (which
//! makes a growing `String`/`Vec` at the top reallocate in place); everything else is reclaimed
//! when the host drops the instance. Allocations that do not fit go to the fallback, so a
//! provider that needs more memory still gets it, up to the host's memory cap.
//!
//! Single-threaded by construction: components have no threads. The counter is an atomic only
//! so the static is `Sync`; on `wasm32` without the atomics feature it compiles to plain loads
//! and stores.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A bump arena of `N` bytes, falling back to `F` for what does not fit.
pub struct ArenaFirst<const N: usize, F> {
    arena: Arena<N>,
    /// Offset of the first free byte in `arena`.
    top: AtomicUsize,
    fallback: F,
}

/// The arena's bytes, aligned for any scalar the canonical ABI uses.
#[repr(C, align(16))]
struct Arena<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the arena's bytes are only handed out by `ArenaFirst`, which never gives the same bytes
// to two live allocations; components are single-threaded, and `top` is atomic regardless.
#[allow(unsafe_code)]
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize, F> ArenaFirst<N, F> {
    /// An empty arena in front of `fallback`.
    pub const fn new(fallback: F) -> Self {
        Self {
            arena: Arena(UnsafeCell::new([0; N])),
            top: AtomicUsize::new(0),
            fallback,
        }
    }

    fn base(&self) -> usize {
        self.arena.0.get() as usize
    }

    /// The offset of `ptr` in the arena, if it points into it.
    fn offset_of(&self, ptr: *mut u8) -> Option<usize> {
        (ptr as usize).checked_sub(self.base()).filter(|&o| o < N)
    }

    /// Bytes handed out from the arena so far (including alignment padding).
    #[cfg(test)]
    fn used(&self) -> usize {
        self.top.load(Ordering::Relaxed)
    }

    /// Carves `layout` from the arena, or `None` when it does not fit.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let base = self.base();
        let top = self.top.load(Ordering::Relaxed);
        // `align` is a power of two; round the absolute address up, then work in offsets.
        let mask = layout.align() - 1;
        let start = (base.checked_add(top)?.checked_add(mask)? & !mask) - base;
        let end = start.checked_add(layout.size())?;
        if end > N {
            return None;
        }
        self.top.store(end, Ordering::Relaxed);
        // Derive the pointer from the arena's own pointer so it keeps its provenance.
        Some(self.arena.0.get().cast::<u8>().wrapping_add(start))
    }
}

// SAFETY: `bump` hands out disjoint, in-bounds, correctly aligned ranges of the arena; `dealloc`
// and `realloc` only move `top` back over the most recent block, whose bytes the caller gives up;
// everything outside the arena is the fallback's, passed back to it unchanged.
#[allow(unsafe_code)]
unsafe impl<const N: usize, F: GlobalAlloc> GlobalAlloc for ArenaFirst<N, F> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: same contract as ours.
            None => unsafe { self.fallback.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset_of(ptr) {
            Some(offset) => {
                // Give back the most recent block; anything older stays until the instance dies.
                if offset + layout.size() == self.top.load(Ordering::Relaxed) {
                    self.top.store(offset, Ordering::Relaxed);
                }
            }
            // SAFETY: `ptr` came from the fallback with this layout.
            None => unsafe { self.fallback.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(offset) = self.offset_of(ptr) else {
            // SAFETY: `ptr` came from the fallback with this layout.
            return unsafe { self.fallback.realloc(ptr, layout, new_size) };
        };
        let top = self.top.load(Ordering::Relaxed);
        if offset + layout.size() == top {
            // The most recent block: grow or shrink it in place when the arena has room.
            if let Some(end) = offset.checked_add(new_size).filter(|&end| end <= N) {
                self.top.store(end, Ordering::Relaxed);
                return ptr;
            }
        } else if new_size <= layout.size() {
            // An older block shrinking: keep it where it is.
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does not
        // overflow `isize`, so this layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (the caller's contract for `realloc`).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes long.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
#[allow(unsafe_code, clippy::unwrap_used)]
mod tests {
    extern crate std;

    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::alloc::System;

    use super::ArenaFirst;

    /// The system allocator, counting the allocations that reach it.
    struct Counting {
        allocs: AtomicUsize,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.allocs.fetch_add(1, Ordering::Relaxed);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    fn arena<const N: usize>() -> std::boxed::Box<ArenaFirst<N, Counting>> {
        std::boxed::Box::new(ArenaFirst::new(Counting {
            allocs: AtomicUsize::new(0),
        }))
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn small_allocations_come_from_the_arena_aligned_and_disjoint() {
        let a = arena::<256>();
        unsafe {
            let p1 = a.alloc(layout(3, 1));
            let p2 = a.alloc(layout(8, 8));
            let p3 = a.alloc(layout(16, 16));
            assert_eq!(p2 as usize % 8, 0);
            assert_eq!(p3 as usize % 16, 0);
            assert!(p1 as usize + 3 <= p2 as usize);
            assert!(p2 as usize + 8 <= p3 as usize);
            p1.write_bytes(0xAA, 3);
            p2.write_bytes(0xBB, 8);
            p3.write_bytes(0xCC, 16);
            assert_eq!(*p1.add(2), 0xAA);
            assert_eq!(*p2.add(7), 0xBB);
        }
        assert_eq!(a.fallback.allocs.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn what_does_not_fit_goes_to_the_fallback_and_comes_back_to_it() {
        let a = arena::<64>();
        unsafe {
            let small = a.alloc(layout(48, 8));
            let big = a.alloc(layout(1024, 8));
            assert!(a.offset_of(small).is_some());
            assert!(a.offset_of(big).is_none());
            assert_eq!(a.fallback.allocs.load(Ordering::Relaxed), 1);
            big.write_bytes(1, 1024);
            a.dealloc(big, layout(1024, 8));
        }
    }

    #[test]
    fn freeing_the_most_recent_block_gives_its_bytes_back() {
        let a = arena::<128>();
        unsafe {
            let older = a.alloc(layout(16, 8));
            let used = a.used();
            let recent = a.alloc(layout(32, 8));
            a.dealloc(older, layout(16, 8));
            assert!(a.used() > used, "an older block is not reclaimed");
            a.dealloc(recent, layout(32, 8));
            assert_eq!(a.used(), used);
            assert_eq!(a.alloc(layout(32, 8)), recent, "the bytes are reused");
        }
    }

    #[test]
    fn the_most_recent_block_grows_in_place_and_moves_when_the_arena_is_full() {
        let a = arena::<64>();
        unsafe {
            let p = a.alloc(layout(8, 1));
            p.copy_from_nonoverlapping(b"gatehous".as_ptr(), 8);
            let grown = a.realloc(p, layout(8, 1), 40);
            assert_eq!(grown, p, "grown in place");
            assert_eq!(a.used(), 40);
            let moved = a.realloc(grown, layout(40, 1), 200);
            assert!(
                a.offset_of(moved).is_none(),
                "too big: moved to the fallback"
            );
            assert_eq!(core::slice::from_raw_parts(moved, 8), b"gatehous");
            assert_eq!(a.used(), 0, "the arena block was given back");
            a.dealloc(moved, layout(200, 1));
        }
    }

    #[test]
    fn an_older_block_growing_is_copied() {
        let a = arena::<256>();
        unsafe {
            let old = a.alloc(layout(4, 1));
            old.copy_from_nonoverlapping(b"abcd".as_ptr(), 4);
            let other = a.alloc(layout(4, 1));
            let _newer = a.alloc(layout(4, 1));
            let grown = a.realloc(old, layout(4, 1), 16);
            assert_ne!(grown, old);
            assert_eq!(core::slice::from_raw_parts(grown, 4), b"abcd");
            assert_eq!(
                a.realloc(grown, layout(16, 1), 8),
                grown,
                "the top shrinks in place"
            );
            let _top = a.alloc(layout(1, 1));
            assert_eq!(
                a.realloc(other, layout(4, 1), 2),
                other,
                "an older block shrinks in place"
            );
        }
    }

    #[test]
    fn huge_and_overaligned_requests_do_not_overflow() {
        let a = arena::<64>();
        unsafe {
            assert!(a.bump(layout(usize::MAX / 2, 1)).is_none());
            let p = a.alloc(layout(8, 4096));
            assert_eq!(p as usize % 4096, 0);
            a.dealloc(p, layout(8, 4096));
        }
    }
}
