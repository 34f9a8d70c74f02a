//! The `rt` feature: what a `no_std` component needs and `std` otherwise supplies. A global
//! allocator (an arena in the initial memory, then dlmalloc; see `arena`), a panic handler that
//! traps, the canonical-ABI `cabi_realloc` export, and `memcpy`/`memcmp` from wasi-libc (which
//! import nothing).

/// Bytes of the allocation arena in the initial linear memory. Providers allocate a few hundred
/// bytes to a few KiB per call; larger needs spill over to dlmalloc.
const ARENA_BYTES: usize = 128 << 10;

/// Allocations come from an arena in the initial memory, so a provider call never grows its
/// memory (see `arena`); dlmalloc serves what does not fit.
#[global_allocator]
static ALLOCATOR: super::arena::ArenaFirst<ARENA_BYTES, dlmalloc::GlobalDlmalloc> =
    super::arena::ArenaFirst::new(dlmalloc::GlobalDlmalloc);

/// A panic in a provider traps the instance; the host cuts the call off fail-closed.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// The canonical ABI's allocator export, which wasi-libc provides only to `std` builds.
///
/// # Safety
/// Called only by the component-model runtime, with the contract of `cabi_realloc`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, realloc};
    if new_len == 0 {
        // A zero-sized allocation: any well-aligned non-null pointer will do.
        return align as *mut u8;
    }
    // SAFETY: the runtime passes a power-of-two `align` and, for a non-zero `old_len`, a
    // pointer it previously obtained from this function with the same `old_len` and `align`.
    let ptr = unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(
                old_ptr,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if ptr.is_null() {
        // Out of memory: trap, as the canonical ABI expects.
        core::arch::wasm32::unreachable()
    }
    ptr
}

// `core` lowers slice comparisons and copies to `memcmp`/`memcpy`; take them from wasi-libc.
#[allow(unsafe_code)]
#[link(name = "c")]
unsafe extern "C" {}
